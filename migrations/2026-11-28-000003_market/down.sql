DROP TABLE order_hour_credits;
DROP TABLE outages;
DROP TABLE orders;
DROP TABLE listing_hours;
DROP TABLE listings;
