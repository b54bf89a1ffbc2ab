"""The browser front ends the API serves itself: the user console (``/console``) and the admin
panel (``/admin/ui``). Static pages and ES modules shipped in this package (no build step, no
CDN) that sign in and call the public API like any other client; see ``pages``."""
