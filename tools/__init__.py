"""Developer scripts: service checks, the local stack, the browser and its screenshots."""
