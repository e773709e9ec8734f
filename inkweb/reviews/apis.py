"""Review API: list a slide's decisions and record a new one."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.response import Response

from inkweb.accounts.permissions import IsReviewer
from inkweb.core.api import ApiView
from inkweb.core.exceptions import NotFoundError
from inkweb.reviews.models import ReviewDecision
from inkweb.reviews.selectors import review_list
from inkweb.reviews.services import review_record
from inkweb.runs.models import PipelineRun
from inkweb.slides.selectors import slide_get


class ReviewOutputSerializer(serializers.ModelSerializer):
    """One recorded decision."""

    reviewer = serializers.CharField(source="reviewer.username")
    slide_id = serializers.IntegerField()
    run_id = serializers.IntegerField()

    class Meta:
        """Every field is read-only."""

        model = ReviewDecision
        fields = ["id", "slide_id", "run_id", "reviewer", "decision", "note", "created_at"]
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

        run = None
        run_id = payload.validated_data.get("run")
        if run_id is not None:
            run = PipelineRun.objects.filter(pk=run_id).first()
            if run is None:
                raise NotFoundError(f"Run {run_id} does not exist.", code="run_not_found")

        review = review_record(
            slide=slide,
            reviewer=request.user,
            decision=payload.validated_data["decision"],
            note=payload.validated_data["note"],
            run=run,
        )
        return Response(ReviewOutputSerializer(review).data, status=status.HTTP_201_CREATED)
