"""CityWatch citywatch."""
