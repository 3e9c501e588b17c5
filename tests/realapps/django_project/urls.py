from django.urls import path, re_path

from realapps.django_project import views

urlpatterns = [
    path("polls/", views.index, name="index"),
    path("polls/<int:poll_id>/", views.detail, name="detail"),
    path("polls/<int:poll_id>/vote/", views.vote, name="vote"),
    path("status/", views.status, name="status"),
    # a catch-all over fender's paths: it must not take them
    re_path(r"^(?P<anything>(health|metrics|circuit).*)$", views.page, name="page"),
]
