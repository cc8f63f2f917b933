"""CityWatch api."""
