"""Delivery status notifications (Postfix's bounce(8)): mta.bounce.notices, mta.bounce.report."""
