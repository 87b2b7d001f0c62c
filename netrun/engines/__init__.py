"""Where runs execute: the local engine (a SQLite journal) and the steps on Inngest."""
