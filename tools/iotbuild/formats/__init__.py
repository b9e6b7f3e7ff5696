"""Pure readers and writers of one binary format each; no workspace, feature or product knowledge here."""
