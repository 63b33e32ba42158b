"""Project scaffolding: the template catalogue, the init rules, and the line-prompt wizards.

One module per job:
- `catalogue`: which templates exist (the bundled `templates/` directories) and how they are described;
- `create`: the rules of `pgmi init` (empty-target check, copy, `{{PROJECT_NAME}}`, managed files);
- `prompts`: the plain `[Y/n]` / text / choice / secret prompts on stderr;
- `connection_wizard`: provider, auth, form, test connection -> a pgmi.yaml `connection` mapping;
- `init_wizard`: directory, template, "set up the connection now?";
- `persist`: after a wizard, pgmi.yaml and the optional `.pgpass` line (written by `conn.pgpass`).
"""
