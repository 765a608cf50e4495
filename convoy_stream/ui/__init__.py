"""The dashboard at `/ui/`: server-rendered pages over the API's own queries.

`routes.py` (the pages' paths), `pages.py` (one handler per page), `session.py` (signed
cookies and CSRF tokens), `signin.py`, `render.py` (escaping templates and security
headers), `chart.py` (the counts chart), `templates/`, `static/` (one stylesheet, one
script; no build step).
"""
