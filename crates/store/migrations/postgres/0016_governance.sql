-- Who put a user in the deactivation or suspension in force ('instance' or 'org:<id>'), so that an
-- org's directory cannot undo what a higher or another authority did; and who scheduled a
-- deactivation, so that the scheduler acts with that person's rights.
ALTER TABLE users ADD COLUMN status_by TEXT;
ALTER TABLE users ADD COLUMN deactivate_by TEXT;
