-- Access reviews: a snapshot of who has access, with a recommendation, a decision per person,
-- and the decisions applied on completion.
CREATE TABLE access_reviews (
    id            TEXT PRIMARY KEY,
    org_id        TEXT REFERENCES orgs (id),
    inactive_days BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    created_by    TEXT REFERENCES users (id),
    completed_at  BIGINT,
    completed_by  TEXT REFERENCES users (id)
);

CREATE TABLE access_review_items (
    review_id      TEXT NOT NULL REFERENCES access_reviews (id),
    user_id        TEXT NOT NULL REFERENCES users (id),
    email          TEXT NOT NULL,
    last_login_at  BIGINT,
    roles          TEXT NOT NULL,
    recommendation TEXT NOT NULL,
    decision       TEXT,
    PRIMARY KEY (review_id, user_id)
);
