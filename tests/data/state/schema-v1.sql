-- A state database written by watcher at schema version 1 (sqlite3 .dump), one alert pending.
BEGIN TRANSACTION;
CREATE TABLE alerts (
	id INTEGER NOT NULL, 
	feed VARCHAR(200) NOT NULL, 
	item_id TEXT NOT NULL, 
	notifier VARCHAR(200) NOT NULL, 
	rules TEXT NOT NULL, 
	title TEXT NOT NULL, 
	body TEXT NOT NULL, 
	link TEXT NOT NULL, 
	created_at DATETIME NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	attempts INTEGER NOT NULL, 
	next_attempt_at DATETIME NOT NULL, 
	last_error TEXT, 
	sent_at DATETIME, 
	payload TEXT NOT NULL, 
	held BOOLEAN NOT NULL, 
	batch INTEGER, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_alert_item_notifier UNIQUE (feed, item_id, notifier)
);
INSERT INTO "alerts" VALUES(1,'kyiv-news','urn:1','ops','["kharkiv"]','[kharkiv] Kharkiv story','body','http://news.example.org/1','2026-11-24 12:00:00.000000','pending',0,'2026-11-24 12:00:00.000000',NULL,NULL,'{"title": "Kharkiv story"}',0,NULL);
CREATE TABLE feeds (
	name VARCHAR(200) NOT NULL, 
	url TEXT NOT NULL, 
	etag TEXT, 
	last_modified TEXT, 
	body_hash VARCHAR(64), 
	baselined BOOLEAN NOT NULL, 
	created_at DATETIME NOT NULL, 
	last_poll_at DATETIME, 
	last_success_at DATETIME, 
	last_error TEXT, 
	last_error_at DATETIME, 
	failures INTEGER NOT NULL, 
	failing_since DATETIME, 
	next_poll_at DATETIME, 
	disabled_reason TEXT, 
	disabled_url TEXT, 
	moved_from TEXT, 
	moved_to TEXT, 
	max_items INTEGER NOT NULL, 
	health_notice VARCHAR(16), 
	PRIMARY KEY (name)
);
INSERT INTO "feeds" VALUES('kyiv-news','http://news.example.org/feed','"e"',NULL,'h',1,'2026-11-24 12:00:00.000000','2026-11-24 12:00:00.000000','2026-11-24 12:00:00.000000',NULL,NULL,0,NULL,NULL,NULL,NULL,NULL,NULL,1,NULL);
CREATE TABLE items (
	feed VARCHAR(200) NOT NULL, 
	item_id TEXT NOT NULL, 
	title TEXT NOT NULL, 
	link TEXT NOT NULL, 
	published DATETIME, 
	first_seen_at DATETIME NOT NULL, 
	last_seen_at DATETIME NOT NULL, 
	text TEXT, 
	silent BOOLEAN NOT NULL, 
	PRIMARY KEY (feed, item_id)
);
INSERT INTO "items" VALUES('kyiv-news','urn:1','Kharkiv story','',NULL,'2026-11-24 12:00:00.000000','2026-11-24 12:00:00.000000','{"summary": "", "content": "", "author": "", "tags": []}',0);
CREATE TABLE schema_version (
	version INTEGER NOT NULL
);
INSERT INTO "schema_version" VALUES(1);
CREATE INDEX ix_items_first_seen ON items (first_seen_at);
CREATE INDEX ix_alerts_due ON alerts (status, next_attempt_at);
CREATE INDEX ix_alerts_sent ON alerts (notifier, sent_at);
COMMIT;
