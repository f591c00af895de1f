-- The photo app of the serverless lab: photos, their thumbnails, and the settings the
-- functions load when an instance starts.
-- step: Creating the settings, photos and thumbnails tables
CREATE TABLE settings (
    name  text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE photos (
    id          int PRIMARY KEY,
    owner       text NOT NULL,
    path        text NOT NULL,
    uploaded_at timestamptz NOT NULL
);
CREATE TABLE thumbnails (
    photo_id  int PRIMARY KEY REFERENCES photos (id),
    thumb_key text NOT NULL,
    made_at   timestamptz NOT NULL DEFAULT now()
);
-- step: Writing the settings and 200 photos
INSERT INTO settings (name, value) VALUES
    ('cdn_base', 'https://cdn.example.com/'),
    ('thumb_width', '320'),
    ('thumb_height', '240');
INSERT INTO photos (id, owner, path, uploaded_at)
SELECT n,
       'user' || (n % 17),
       'u' || (n % 17) || '/' || substr(md5('photo' || n), 1, 12) || '.jpg',
       timestamptz '2026-01-01' + n * interval '37 minutes'
FROM generate_series(1, 200) AS n;
INSERT INTO thumbnails (photo_id, thumb_key)
SELECT n, 'thumbs/' || n || '-seed.jpg' FROM generate_series(1, 200) AS n;
