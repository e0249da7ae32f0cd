from django.urls import path

from . import views

urlpatterns = [
    path('', views.comet_main),
    path('stage/', views.comet_stage),
    path('stage_last/', views.comet_stage_last),
    path('news/wait/', views.news_wait),
    path('news/post/', views.news_post),
]
