-- Other servers' signing keys (server-server API, "Retrieving server keys").

-- One row per (server, key): the key as the freshest verified /_matrix/key/v2/server response
-- we hold described it. key_json is that whole signed response (signatures cover its canonical
-- JSON, so storing it re-encoded keeps them valid): as a notary we hand the original signed
-- object on, adding our own signature.
-- from_server is where it came from: the server itself, or the notary that vouched for it.
CREATE TABLE server_keys (
    server_name     TEXT   NOT NULL,
    key_id          TEXT   NOT NULL,
    verify_key      TEXT   NOT NULL,  -- unpadded base64 ed25519 public key
    valid_until_ts  BIGINT NOT NULL,  -- the response's valid_until_ts
    expired_ts      BIGINT,           -- set for old_verify_keys; NULL for current keys
    fetched_ts      BIGINT NOT NULL,
    from_server     TEXT   NOT NULL,
    key_json        TEXT   NOT NULL,
    PRIMARY KEY (server_name, key_id)
);
