-- The record that every stored secret is sealed (docs/reference.md §2, "Secrets at
-- rest"): written by `jirasync secrets reencrypt` when it leaves no plaintext and
-- nothing unreadable behind. While it exists, plaintext in a sealed column is refused
-- (`secret_unreadable`), never used; every process re-reads it at most every minute.
-- One row at most.
CREATE TABLE secrets_sealed (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    key_id text NOT NULL,
    sealed_at timestamptz NOT NULL DEFAULT now()
);
