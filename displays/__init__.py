"""Screens: the WebSocket gateway that fans the hall's events out, and the
pages (LED hall screen, window strip) that show and speak them."""
