"""API routes of slides."""

from django.urls import path

from inkweb.slides.apis import SlideDetailApi, SlideListApi, SlideThumbnailApi

urlpatterns = [
    path("", SlideListApi.as_view(), name="api-slide-list"),
    path("<int:slide_id>/", SlideDetailApi.as_view(), name="api-slide-detail"),
    path("<int:slide_id>/thumbnail", SlideThumbnailApi.as_view(), name="api-slide-thumbnail"),
]
