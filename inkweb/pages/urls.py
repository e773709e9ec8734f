"""Page routes."""

from django.contrib.auth import views as auth_views
from django.urls import path

from inkweb.pages import review_pages, views

urlpatterns = [
    path("", views.slide_list_page, name="slide-list"),
    path("slides/<int:slide_id>/", views.slide_detail_page, name="slide-detail"),
    path("review/", review_pages.review_queue_page, name="review-queue"),
    path("audit/", review_pages.audit_page, name="audit-log"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(
            template_name="registration/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
]
