app_name = "exports"

# Filled by the exports feature (report cards, copy view, feedback dataset downloads).
urlpatterns: list = []
