"""The TrackHAR property names in plain words, grouped the way the dashboard tells them.

Groups: ``identifier`` (identifiers that follow you), ``device`` (your device), ``activity``
(what you were doing), ``location`` (where you are). Identifier-like properties are stored only as
a keyed fingerprint and a masked preview; precise coordinates are rounded; everything else is kept
as a short value. The words are gazeback's own.
"""

from __future__ import annotations

from typing import Literal

Group = Literal["identifier", "device", "activity", "location"]

GROUP_WORDS: dict[str, str] = {
    "identifier": "identifiers that follow you",
    "device": "your device",
    "activity": "what you were doing",
    "location": "where you are",
}
GROUP_ORDER = ("identifier", "device", "activity", "location")

# Kept only as keyed fingerprint + masked preview (never the value).
IDENTIFIERS = frozenset(
    {
        "advertisingId", "hashedAdvertisingId", "deviceId", "developerScopedId", "userId",
        "installationId", "sessionId", "pushNotificationToken", "browserId", "publicIp",
        "localIp", "macAddress", "otherIdentifiers", "deviceName",
    }
)  # fmt: skip
# Rounded to 2 decimals (about 1 km) before they are stored.
COORDINATES = frozenset({"latitude", "longitude"})
MAX_VALUE_CHARS = 120  # descriptive values longer than this are cut, ending with "…"

# property → (group, plain words: "…the model of your phone")
PROPERTIES: dict[str, tuple[Group, str]] = {
    # identifiers that follow you
    "advertisingId": ("identifier", "your device's advertising ID"),
    "hashedAdvertisingId": ("identifier", "your advertising ID, hashed"),
    "deviceId": ("identifier", "an ID of your device"),
    "developerScopedId": ("identifier", "an ID of your device that every app of one maker shares"),
    "userId": ("identifier", "a user ID the app or site gave you"),
    "installationId": ("identifier", "an ID of this installation of the app"),
    "sessionId": ("identifier", "an ID of your visit or session"),
    "pushNotificationToken": ("identifier", "the address for sending notifications to your device"),
    "browserId": ("identifier", "an ID of your browser"),
    "publicIp": ("identifier", "your internet address (IP)"),
    "localIp": ("identifier", "your device's address in your home network"),
    "macAddress": ("identifier", "your device's network hardware address (MAC)"),
    "otherIdentifiers": ("identifier", "another ID that tells you apart"),
    "deviceName": ("identifier", "the name you gave your device"),
    # your device
    "accelerometerX": ("device", "how your device was moving (accelerometer)"),
    "accelerometerY": ("device", "how your device was moving (accelerometer)"),
    "accelerometerZ": ("device", "how your device was moving (accelerometer)"),
    "rotationX": ("device", "how your device was turned (gyroscope)"),
    "rotationY": ("device", "how your device was turned (gyroscope)"),
    "rotationZ": ("device", "how your device was turned (gyroscope)"),
    "architecture": ("device", "your device's processor type"),
    "batteryLevel": ("device", "how full your battery was"),
    "isCharging": ("device", "whether your device was charging"),
    "carrier": ("device", "your mobile network operator"),
    "isRoaming": ("device", "whether you were roaming"),
    "signalStrengthCellular": ("device", "your mobile signal strength"),
    "signalStrengthWifi": ("device", "your Wi-Fi signal strength"),
    "networkConnectionType": ("device", "how you were connected (Wi-Fi, mobile)"),
    "diskFree": ("device", "your device's free storage"),
    "diskTotal": ("device", "your device's storage size"),
    "diskUsed": ("device", "your device's used storage"),
    "ramFree": ("device", "your device's free memory"),
    "ramTotal": ("device", "your device's memory size"),
    "ramUsed": ("device", "your device's used memory"),
    "isEmulator": ("device", "whether the device is an emulator"),
    "isRooted": ("device", "whether your device is rooted or jailbroken"),
    "isAutomated": ("device", "whether the browser was automated"),
    "isInDarkMode": ("device", "whether dark mode was on"),
    "isDntEnabled": ("device", "whether you asked not to be tracked (Do Not Track)"),
    "isJsEnabled": ("device", "whether JavaScript was on"),
    "isMobileDevice": ("device", "whether it is a mobile device"),
    "language": ("device", "your language"),
    "manufacturer": ("device", "who made your device"),
    "model": ("device", "the model of your device"),
    "osName": ("device", "your device's operating system"),
    "osVersion": ("device", "your operating system's version"),
    "orientation": ("device", "how you held your screen"),
    "screenColorDepth": ("device", "your screen's colour depth"),
    "screenHeight": ("device", "your screen's size"),
    "screenWidth": ("device", "your screen's size"),
    "browserWindowHeight": ("device", "your browser window's size"),
    "browserWindowWidth": ("device", "your browser window's size"),
    "pageHeight": ("device", "the page's size on your screen"),
    "pageWidth": ("device", "the page's size on your screen"),
    "userAgent": ("device", "your browser or app and its version (user agent)"),
    "volume": ("device", "your device's volume"),
    "uptime": ("device", "how long your device had been on"),
    "trackerSdkVersion": ("device", "the version of the tracker's code in the app"),
    "appVersion": ("device", "the version of the app"),
    # what you were doing
    "appId": ("activity", "the app you used"),
    "appName": ("activity", "the app you used"),
    "viewedPage": ("activity", "the page or screen you were on"),
    "viewedPageCategory": ("activity", "the kind of page you were on"),
    "viewedPageKeywords": ("activity", "keywords of the page you were on"),
    "viewedPageLanguage": ("activity", "the language of the page you were on"),
    "websiteName": ("activity", "the website you were on"),
    "websiteUrl": ("activity", "the website you were on"),
    "propertyId": ("activity", "which site or app sent it (its account there)"),
    "referer": ("activity", "the page you came from"),
    "userAction": ("activity", "what you did (an event, a purchase, a click)"),
    "userActionSource": ("activity", "where you did it"),
    "interactedElement": ("activity", "what you clicked or touched"),
    "isConversion": ("activity", "whether you bought or signed up"),
    "revenue": ("activity", "how much you spent"),
    "currency": ("activity", "the currency you paid in"),
    "campaignCreative": ("activity", "the ad that brought you"),
    "campaignCreativePosition": ("activity", "where the ad that brought you sat"),
    "campaignMedium": ("activity", "the ad campaign that brought you"),
    "campaignName": ("activity", "the ad campaign that brought you"),
    "campaignSource": ("activity", "the ad campaign that brought you"),
    "campaignTerm": ("activity", "the search words that brought you"),
    "scrollPositionX": ("activity", "how far you scrolled"),
    "scrollPositionY": ("activity", "how far you scrolled"),
    "timeSpent": ("activity", "how long you stayed"),
    "sessionDuration": ("activity", "how long you stayed"),
    "sessionCount": ("activity", "how often you came back"),
    "startTime": ("activity", "when you started"),
    "lastActivityTime": ("activity", "when you were last active"),
    "userActiveTime": ("activity", "how long you were active"),
    "isUserActive": ("activity", "whether you were active"),
    "isUserInactive": ("activity", "whether you were inactive"),
    "isInForeground": ("activity", "whether the app was open on screen"),
    "isFirstLaunch": ("activity", "whether it was your first time in the app"),
    "installTime": ("activity", "when you installed the app"),
    "errorInformation": ("activity", "errors the app ran into"),
    "consentState": ("activity", "what you consented to"),
    "segment": ("activity", "which group of people they put you in"),
    "userInterests": ("activity", "what they think you are interested in"),
    "userGender": ("activity", "your gender"),
    # where you are
    "latitude": ("location", "where you are (latitude)"),
    "longitude": ("location", "where you are (longitude)"),
    "country": ("location", "your country"),
    "state": ("location", "your region or state"),
    "timezone": ("location", "your time zone"),
}


def group_of(prop: str) -> Group:
    return PROPERTIES[prop][0] if prop in PROPERTIES else "activity"


def words_of(prop: str) -> str:
    return PROPERTIES[prop][1] if prop in PROPERTIES else prop
