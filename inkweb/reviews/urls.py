"""API routes of reviews: decisions and comments nested under a slide, and the queue."""

from django.urls import path

from inkweb.reviews.apis import (
    ReviewQueueApi,
    ReviewQueueNextApi,
    SlideCommentListApi,
    SlideReviewListApi,
)

urlpatterns = [
    path("<int:slide_id>/reviews/", SlideReviewListApi.as_view(), name="api-slide-reviews"),
    path("<int:slide_id>/comments/", SlideCommentListApi.as_view(), name="api-slide-comments"),
]

# Mounted at /api/reviews/.
queue_urlpatterns = [
    path("queue/", ReviewQueueApi.as_view(), name="api-review-queue"),
    path("queue/next/", ReviewQueueNextApi.as_view(), name="api-review-queue-next"),
]
