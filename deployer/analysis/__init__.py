"""Analysis: templates in Argo Rollouts' format, their conditions, and how measurements
decide a release."""
