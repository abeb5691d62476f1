"""The revisions, in order of ``down_revision``. Add one; never edit one that shipped."""
