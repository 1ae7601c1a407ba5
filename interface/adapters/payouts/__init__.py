"""Payout adapters: Stripe (through the official SDK), a sandbox that moves no
money, and the verification of Stripe's webhooks about payouts."""
