DROP TABLE grid_intensities;
ALTER TABLE orders DROP COLUMN estimated_energy_kwh, DROP COLUMN estimated_co2e_kg;
ALTER TABLE listings
    DROP COLUMN accelerator_kind, DROP COLUMN accelerator_vendor, DROP COLUMN accelerator_model,
    DROP COLUMN board_power_w, DROP COLUMN pue, DROP COLUMN performance_tflops;
DROP TABLE programme_caps;
DROP TABLE allocation_draws;
DROP TABLE grant_allocations;
DROP TABLE project_grants;
DROP TABLE projects;
