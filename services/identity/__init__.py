"""The identity service: principals, login, roles and the tokens every service trusts."""
