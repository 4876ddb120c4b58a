"""The script `gazeback run` hands to mitmdump (same as addons/gazeback_addon.py):

mitmdump -s addons/gazeback_addon.py --set gazeback_db=trail.db
"""

from gazeback.capture.addon import TrailLogger

addons = [TrailLogger()]
