"""Numbered, idempotent install scripts, shipped as package data: source/ for every tracked
database, vault/ for the Data Vault store."""
