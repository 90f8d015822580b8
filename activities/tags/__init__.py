"""Tag values for pages of users, and the `journeys tags test` lookup."""
