"""Review API: a slide's decisions and comments, and the queue of slides awaiting review."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.response import Response

from inkweb.accounts.permissions import IsReviewer
from inkweb.core.api import ApiView
from inkweb.core.exceptions import NotFoundError
from inkweb.core.pagination import paginated_response
from inkweb.reviews.models import ReviewDecision, SlideComment
from inkweb.reviews.selectors import comment_list, review_list, review_queue, review_queue_next
from inkweb.reviews.services import COMMENT_MAX_CHARS, comment_create, review_record
from inkweb.runs.models import PipelineRun
from inkweb.slides.models import Slide
from inkweb.slides.selectors import slide_get


def _run_of_request(run_id: int | None) -> PipelineRun | None:
    """Return the run a request names, None when it names none, or raise NotFoundError."""
    if run_id is None:
        return None
    run = PipelineRun.objects.filter(pk=run_id).first()
    if run is None:
        raise NotFoundError(f"Run {run_id} does not exist.", code="run_not_found")
    return run


class ReviewOutputSerializer(serializers.ModelSerializer):
    """One recorded decision."""

    reviewer = serializers.CharField(source="reviewer.username")
    slide_id = serializers.IntegerField()
    run_id = serializers.IntegerField()

    class Meta:
        """Every field is read-only."""

        model = ReviewDecision
        fields = [
            "id",
            "slide_id",
            "run_id",
            "output_sha256",
            "reviewer",
            "decision",
            "note",
            "created_at",
        ]
        read_only_fields = fields


class SlideReviewListApi(ApiView):
    """GET lists a slide's decisions, newest first; POST records one (reviewer role)."""

    @extend_schema_serializer(component_name="ReviewCreate")
    class InputSerializer(serializers.Serializer):
        """The decision, an optional note and optionally the run reviewed."""

        decision = serializers.ChoiceField(choices=ReviewDecision.Decision.choices)
        note = serializers.CharField(required=False, allow_blank=True, max_length=4000, default="")
        run = serializers.IntegerField(
            required=False, min_value=1, help_text="run reviewed; default: newest succeeded run"
        )

    def get_permissions(self):  # noqa: D102
        if self.request.method == "POST":
            return [permission() for permission in (*self.permission_classes, IsReviewer)]
        return super().get_permissions()

    @extend_schema(responses=ReviewOutputSerializer(many=True), summary="List review decisions")
    def get(self, request, slide_id: int):  # noqa: D102
        slide = slide_get(slide_id=slide_id)
        reviews = review_list(slide_id=slide.pk)
        return Response(ReviewOutputSerializer(reviews, many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={201: ReviewOutputSerializer},
        summary="Record a review decision",
    )
    def post(self, request, slide_id: int):  # noqa: D102
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        slide = slide_get(slide_id=slide_id)
        review = review_record(
            slide=slide,
            reviewer=request.user,
            decision=payload.validated_data["decision"],
            note=payload.validated_data["note"],
            run=_run_of_request(payload.validated_data.get("run")),
        )
        return Response(ReviewOutputSerializer(review).data, status=status.HTTP_201_CREATED)


class QueueEntrySerializer(serializers.Serializer):
    """A slide awaiting review, with the run to review and the viewer link in queue mode."""

    slide_id = serializers.IntegerField(source="pk")
    name = serializers.CharField()
    run_id = serializers.IntegerField(source="latest_succeeded_run_id")
    run_finished_at = serializers.DateTimeField(
        source="latest_succeeded_finished_at", allow_null=True
    )
    ink_found = serializers.BooleanField(source="latest_ink_found", allow_null=True)
    uploaded_by = serializers.CharField(source="uploaded_by.username", default=None)
    viewer_url = serializers.SerializerMethodField()

    @extend_schema_field(OpenApiTypes.STR)
    def get_viewer_url(self, slide: Slide) -> str:  # noqa: D102
        return reverse("slide-detail", kwargs={"slide_id": slide.pk}) + "?queue=1"


class ReviewQueueApi(ApiView):
    """GET lists the slides awaiting review, oldest finished run first."""

    @extend_schema(responses=QueueEntrySerializer(many=True), summary="List the review queue")
    def get(self, request):  # noqa: D102
        return paginated_response(
            queryset=review_queue(),
            serializer_class=QueueEntrySerializer,
            request=request,
            view=self,
        )


class ReviewQueueNextApi(ApiView):
    """GET the queued slide to open after the one being reviewed."""

    class FilterSerializer(serializers.Serializer):
        """The slide being reviewed, if any."""

        after = serializers.IntegerField(required=False, min_value=1)

    class OutputSerializer(serializers.Serializer):
        """The next slide (null when the queue has no other slide) and the queue length."""

        next = QueueEntrySerializer(allow_null=True)
        count = serializers.IntegerField()

    @extend_schema(
        parameters=[OpenApiParameter("after", int, description="the slide being reviewed")],
        responses=OutputSerializer,
        summary="Get the next slide of the review queue",
    )
    def get(self, request):  # noqa: D102
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        following = review_queue_next(after_slide_id=filters.validated_data.get("after"))
        output = {"next": following, "count": review_queue().count()}
        return Response(self.OutputSerializer(output).data)


class CommentOutputSerializer(serializers.ModelSerializer):
    """One comment pinned at (x, y) in level-0 pixels."""

    author = serializers.CharField(source="author.username")
    slide_id = serializers.IntegerField()
    run_id = serializers.IntegerField(allow_null=True)

    class Meta:
        """Every field is read-only."""

        model = SlideComment
        fields = ["id", "slide_id", "run_id", "author", "x", "y", "text", "created_at"]
        read_only_fields = fields


class SlideCommentListApi(ApiView):
    """GET lists a slide's comments, oldest first; POST pins a new one."""

    @extend_schema_serializer(component_name="CommentCreate")
    class InputSerializer(serializers.Serializer):
        """The point in level-0 pixels, the text and optionally the run shown."""

        x = serializers.FloatField(help_text="level-0 pixels from the left edge")
        y = serializers.FloatField(help_text="level-0 pixels from the top edge")
        text = serializers.CharField(max_length=COMMENT_MAX_CHARS)
        run = serializers.IntegerField(required=False, min_value=1, help_text="run shown")

    @extend_schema(responses=CommentOutputSerializer(many=True), summary="List comments")
    def get(self, request, slide_id: int):  # noqa: D102
        slide = slide_get(slide_id=slide_id)
        return Response(CommentOutputSerializer(comment_list(slide_id=slide.pk), many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={201: CommentOutputSerializer},
        summary="Pin a comment to a point of a slide",
    )
    def post(self, request, slide_id: int):  # noqa: D102
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        comment = comment_create(
            slide=slide_get(slide_id=slide_id),
            author=request.user,
            x=payload.validated_data["x"],
            y=payload.validated_data["y"],
            text=payload.validated_data["text"],
            run=_run_of_request(payload.validated_data.get("run")),
        )
        return Response(CommentOutputSerializer(comment).data, status=status.HTTP_201_CREATED)
