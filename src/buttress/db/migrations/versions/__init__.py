"""buttress's revisions, oldest first; each chains from the one before (``down_revision``)."""
