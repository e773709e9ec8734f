"""API routes of reviews (nested under a slide)."""

from django.urls import path

from inkweb.reviews.apis import SlideReviewListApi

urlpatterns = [
    path("<int:slide_id>/reviews/", SlideReviewListApi.as_view(), name="api-slide-reviews"),
]
