"""CityWatch dashboards."""
