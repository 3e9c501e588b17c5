"""fender: make a web service production-ready in one integration."""
