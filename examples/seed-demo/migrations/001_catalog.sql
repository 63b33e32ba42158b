-- Roles, permissions and the grants between them. Rows are never deleted: a role or permission
-- that leaves the seed file is marked deprecated, so history that refers to it stays valid.
CREATE TABLE IF NOT EXISTS role (
    role_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key           text NOT NULL UNIQUE,
    description   text NOT NULL DEFAULT '',
    deprecated_at timestamptz
);

CREATE TABLE IF NOT EXISTS permission (
    permission_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key           text NOT NULL UNIQUE,
    description   text NOT NULL DEFAULT '',
    deprecated_at timestamptz
);

CREATE TABLE IF NOT EXISTS role_permission (
    role_id       bigint NOT NULL REFERENCES role (role_id),
    permission_id bigint NOT NULL REFERENCES permission (permission_id),
    PRIMARY KEY (role_id, permission_id)
);
