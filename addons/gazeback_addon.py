"""Load gazeback into stock mitmproxy:

mitmdump -s addons/gazeback_addon.py --set gazeback_db=trail.db
"""

from gazeback.capture.addon import TrailLogger

addons = [TrailLogger()]
