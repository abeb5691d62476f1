-- A state database written by watcher at schema version 2 (commit d41d852, sqlite3 .dump): a real
-- daemon polled one feed twice: a baseline of 4 items (guid, link with utm_source, and two without guid
-- or link, one dated), then 3 new matching items alerted to a failing notifier (pending).
-- tests/test_store.py rebuilds that feed document to show that upgrading never floods.
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE schema_version (
	version INTEGER NOT NULL
);
INSERT INTO schema_version VALUES(2);
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
INSERT INTO feeds VALUES('kyiv-news','http://127.0.0.1:33299/news.xml',NULL,NULL,'1c18fefb270663b467e6ae2e17647d4bec9092f5be8478a7e68087fbb0c16ef5',1,'2026-11-30 20:47:35.764698','2026-11-30 20:47:38.897238','2026-11-30 20:47:38.897238',NULL,NULL,0,NULL,NULL,NULL,NULL,NULL,NULL,7,NULL);
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
INSERT INTO items VALUES('kyiv-news','urn:news:1','Kharkiv: city council meets','http://news.example.org/2026/11/council','2026-11-20 09:00:00.000000','2026-11-30 20:47:35.764698','2026-11-30 20:47:36.834862','{"summary": "", "content": "", "author": "", "tags": []}',1);
INSERT INTO items VALUES('kyiv-news','http://news.example.org/2026/11/weather','Weather in Kyiv','http://news.example.org/2026/11/weather?utm_source=rss','2026-11-20 10:00:00.000000','2026-11-30 20:47:35.764698','2026-11-30 20:47:36.834862','{"summary": "Rain", "content": "", "author": "", "tags": []}',1);
INSERT INTO items VALUES('kyiv-news','sha256:9af8c5a8ffc535f8fea807880f8bddf901ceabb9','Status: all systems normal','','2026-11-20 11:00:00.000000','2026-11-30 20:47:35.764698','2026-11-30 20:47:36.834862','{"summary": "no link, no guid, dated", "content": "", "author": "", "tags": []}',1);
INSERT INTO items VALUES('kyiv-news','sha256:adcd941a57a70c4ce38f12a3d153168c8b1fac4a','Undated note without link','',NULL,'2026-11-30 20:47:35.764698','2026-11-30 20:47:36.834862','{"summary": "text of an undated note", "content": "", "author": "", "tags": []}',1);
INSERT INTO items VALUES('kyiv-news','urn:news:2','Kharkov power restored','http://news.example.org/2026/11/power','2026-11-20 12:00:00.000000','2026-11-30 20:47:36.834862','2026-11-30 20:47:36.834862','{"summary": "", "content": "", "author": "", "tags": []}',0);
INSERT INTO items VALUES('kyiv-news','http://news.example.org/2026/11/noguid/','Kharkiv without a guid','http://news.example.org/2026/11/noguid/','2026-11-20 13:00:00.000000','2026-11-30 20:47:36.834862','2026-11-30 20:47:36.834862','{"summary": "Kharkiv", "content": "", "author": "", "tags": []}',0);
INSERT INTO items VALUES('kyiv-news','sha256:fa90b7216ed1aa5800a3f006efa8e3795292a737','Kharkiv note with no guid and no link','',NULL,'2026-11-30 20:47:36.834862','2026-11-30 20:47:36.834862','{"summary": "Kharkiv text", "content": "", "author": "", "tags": []}',0);
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
	priority INTEGER DEFAULT '1' NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_alert_item_notifier UNIQUE (feed, item_id, notifier)
);
INSERT INTO alerts VALUES(1,'kyiv-news','urn:news:2','ops','["kharkiv"]','[kharkiv] Kharkov power restored',replace('Kharkov power restored\nhttp://news.example.org/2026/11/power\nFeed: kyiv-news\nPublished: 2026-11-20 12:00 UTC\nMatched: kharkiv: Kharkov\nEntities: kharkiv\n\n«Kharkov» power restored','\n',char(10)),'http://news.example.org/2026/11/power','2026-11-30 20:47:36.834862','pending',1,'2026-11-30 21:36:41.718810','Failed to send JSON POST notification: Internal server error., error=500.',NULL,'{"title": "Kharkov power restored", "link": "http://news.example.org/2026/11/power", "feed": "kyiv-news", "rules": ["kharkiv"], "terms": ["Kharkov"], "priority": "normal"}',0,NULL,1);
INSERT INTO alerts VALUES(2,'kyiv-news','http://news.example.org/2026/11/noguid/','ops','["kharkiv"]','[kharkiv] Kharkiv without a guid',replace('Kharkiv without a guid\nhttp://news.example.org/2026/11/noguid/\nFeed: kyiv-news\nPublished: 2026-11-20 13:00 UTC\nMatched: kharkiv: Kharkiv\nEntities: kharkiv\n\n«Kharkiv» without a guid','\n',char(10)),'http://news.example.org/2026/11/noguid/','2026-11-30 20:47:36.834862','pending',0,'2026-11-30 21:36:41.718810',NULL,NULL,'{"title": "Kharkiv without a guid", "link": "http://news.example.org/2026/11/noguid/", "feed": "kyiv-news", "rules": ["kharkiv"], "terms": ["Kharkiv"], "priority": "normal"}',0,NULL,1);
INSERT INTO alerts VALUES(3,'kyiv-news','sha256:fa90b7216ed1aa5800a3f006efa8e3795292a737','ops','["kharkiv"]','[kharkiv] Kharkiv note with no guid and no link',replace('Kharkiv note with no guid and no link\nFeed: kyiv-news\nMatched: kharkiv: Kharkiv\nEntities: kharkiv\n\n«Kharkiv» note with no guid and no link','\n',char(10)),'','2026-11-30 20:47:36.834862','pending',0,'2026-11-30 21:36:41.718810',NULL,NULL,'{"title": "Kharkiv note with no guid and no link", "link": "", "feed": "kyiv-news", "rules": ["kharkiv"], "terms": ["Kharkiv"], "priority": "normal"}',0,NULL,1);
CREATE INDEX ix_items_first_seen ON items (first_seen_at);
CREATE INDEX ix_alerts_sent ON alerts (notifier, sent_at);
CREATE INDEX ix_alerts_due ON alerts (status, next_attempt_at);
COMMIT;
