-- The orgs a user owns are looked up on every deactivation; without this index that read every org.
CREATE INDEX orgs_owner ON orgs (owner_id);
