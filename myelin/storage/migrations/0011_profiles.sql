-- User profiles (client-server API, "Profiles"). A local user without a row has the default
-- profile (displayname = localpart, as Synapse gives new accounts); the row is written on the
-- first change. search_name is displayname lower-cased and NFKC-normalised for the user
-- directory (SQLite's lower() folds ASCII only). fields holds every other profile key as one
-- JSON object.
CREATE TABLE profiles (
    user_id     TEXT NOT NULL PRIMARY KEY,
    displayname TEXT,
    avatar_url  TEXT,
    search_name TEXT,
    fields      TEXT NOT NULL
);
