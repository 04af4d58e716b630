"""The clock and the courier: APScheduler (via PTB's JobQueue) wakes us; the database says what is due."""
