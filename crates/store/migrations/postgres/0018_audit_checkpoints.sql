-- Signed checkpoints of the audit chain: (seq, hash) of the head at a moment, signed with a key
-- kept outside the database (`kind` 'head'), and the anchor an archiving left ('anchor'). A copy
-- of the database alone cannot forge one; `steward audit verify` checks them.
CREATE TABLE audit_checkpoints (
    seq       BIGINT NOT NULL,
    kind      TEXT   NOT NULL,
    hash      TEXT   NOT NULL,
    at        BIGINT NOT NULL,
    key_id    TEXT   NOT NULL,
    signature TEXT   NOT NULL,
    PRIMARY KEY (seq, kind)
);
