"""Delivery status notifications (Postfix's bounce(8)); see mta.bounce.dsn."""
