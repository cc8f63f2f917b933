"""CityWatch firmware_sim."""
