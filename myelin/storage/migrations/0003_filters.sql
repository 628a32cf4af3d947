-- Client filters (client-server API, "Filtering"). IDs count up per user; the JSON is stored
-- in canonical form so an identical filter uploaded again gets its existing ID back.
CREATE TABLE filters (
    user_id     TEXT   NOT NULL,
    filter_id   BIGINT NOT NULL,
    filter_json TEXT   NOT NULL,
    PRIMARY KEY (user_id, filter_id)
);
CREATE UNIQUE INDEX filters_by_json ON filters (user_id, filter_json);
