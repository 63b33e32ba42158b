INSERT INTO demo.visitor (name) VALUES ('ada'), ('grace'), ('edsger')
ON CONFLICT (name) DO NOTHING;
