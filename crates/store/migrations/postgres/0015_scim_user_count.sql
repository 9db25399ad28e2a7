-- An unfiltered SCIM list of users reads the people SCIM may show in id order from this index,
-- stopping at the page's end, and counts them (totalResults) from it, less the few users SCIM
-- has hidden (the second index): no join, no sort per list.
CREATE INDEX users_people ON users (id) WHERE kind = 'person' AND status <> 'anonymized';
CREATE INDEX scim_users_hidden ON scim_users (user_id) WHERE hidden_at IS NOT NULL;
