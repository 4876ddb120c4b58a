"""The script `gazeback run` hands to mitmdump (same as addons/gazeback_addon.py):

mitmdump -s addons/gazeback_addon.py --set gazeback_db=trail.db
"""

from gazeback.capture.addon import TrailLogger
from gazeback.capture.deviceauth import DeviceAuth
from gazeback.capture.localguard import LocalGuard

# order matters: credentials first, then the SSRF guard, then recording
addons = [DeviceAuth(), LocalGuard(), TrailLogger()]
