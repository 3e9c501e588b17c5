from django.urls import path

from realapps.django_project import views

urlpatterns = [
    path("polls/", views.index, name="index"),
    path("polls/<int:poll_id>/", views.detail, name="detail"),
    path("polls/<int:poll_id>/vote/", views.vote, name="vote"),
]
