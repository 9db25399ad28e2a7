-- Substring search of users (GET /api/v1/users?q=) through a trigram index of email and name,
-- so that a search does not read every user. Each user has a search key of its own (not the
-- rowid, which VACUUM may renumber), and the index row carries it as its rowid.
ALTER TABLE users ADD COLUMN search_key INTEGER;
UPDATE users SET search_key = rowid;
CREATE UNIQUE INDEX users_search_key ON users (search_key);

CREATE VIRTUAL TABLE users_search USING fts5 (text, tokenize = 'trigram');
INSERT INTO users_search (rowid, text) SELECT search_key, email_key || ' ' || lower(name) FROM users;

CREATE TRIGGER users_search_insert AFTER INSERT ON users
BEGIN
    UPDATE users SET search_key = (SELECT COALESCE(MAX(search_key), 0) + 1 FROM users) WHERE rowid = new.rowid;
    INSERT INTO users_search (rowid, text)
        SELECT search_key, new.email_key || ' ' || lower(new.name) FROM users WHERE rowid = new.rowid;
END;

CREATE TRIGGER users_search_update AFTER UPDATE OF email_key, name ON users
    WHEN old.email_key IS NOT new.email_key OR old.name IS NOT new.name
BEGIN
    UPDATE users_search SET text = new.email_key || ' ' || lower(new.name) WHERE rowid = new.search_key;
END;
