"""CityWatch analytics."""
