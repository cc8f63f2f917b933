"""CityWatch ingest."""
