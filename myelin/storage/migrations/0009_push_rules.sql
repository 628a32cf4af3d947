-- Push rules (client-server API, "Push Notifications"). A user's own rules: within one kind,
-- a lower priority value is more important. conditions and actions are JSON text; conditions
-- is NULL for kinds that have none, pattern is set only for content rules.
CREATE TABLE push_rules (
    user_id    TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    rule_id    TEXT    NOT NULL,
    priority   BIGINT  NOT NULL,
    conditions TEXT,
    pattern    TEXT,
    actions    TEXT    NOT NULL,
    enabled    BOOLEAN NOT NULL DEFAULT TRUE,
    PRIMARY KEY (user_id, kind, rule_id)
);

-- A user's changes to server-default rules (enabled and/or actions); NULL keeps the
-- server's value, so a changed default still follows the server's definition otherwise.
CREATE TABLE push_rule_defaults (
    user_id TEXT    NOT NULL,
    kind    TEXT    NOT NULL,
    rule_id TEXT    NOT NULL,
    enabled BOOLEAN,
    actions TEXT,
    PRIMARY KEY (user_id, kind, rule_id)
);
