-- A trusted JWT issuer acts only for emails of its domains (a JSON array; empty: any), and never
-- as a user holding an instance role unless it was created to.
ALTER TABLE jwt_issuers ADD COLUMN domains TEXT NOT NULL DEFAULT '[]';
ALTER TABLE jwt_issuers ADD COLUMN allow_instance_roles BOOLEAN NOT NULL DEFAULT FALSE;
