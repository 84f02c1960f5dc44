"""What the page's lists are made of, without a network: sites from ``site`` records or, when
there are none, the sites devices report on a grid; fields grouped by pillar; the chart's
step; a silence built from an alert's labels."""

from __future__ import annotations

from console_fakes import Services
from console_support import console
from google.protobuf.struct_pb2 import Struct

from smartcity.alerts.v1 import alerts_pb2
from smartcity.records.v1 import records_pb2


def _site(record_id: str, data: dict[str, object]) -> records_pb2.Record:
    body = Struct()
    body.update(data)
    return records_pb2.Record(id=record_id, type="site", data=body)


async def test_sites_come_from_site_records_with_a_location() -> None:
    services = Services(
        site_records=[
            _site(
                "r-1",
                {
                    "site_id": "son-tra-air",
                    "name": "Son Tra air-quality station",
                    "name_vi": "Trạm quan trắc không khí Sơn Trà",
                    "location": {"lat": 16.0822, "lon": 108.2354},
                },
            ),
            _site("cau-do", {"name": "Cau Do", "location": {"lat": 16.01, "lon": 108.19}}),
            _site("r-3", {"site_id": "nowhere", "name": "No location"}),
            _site("r-4", {"site_id": "bad", "location": {"lat": 91, "lon": 0}}),
            _site("r-5", {"site_id": "text", "location": {"lat": "16", "lon": True}}),
        ]
    )
    async with console(services) as client:
        assert (await client.login("view.binh")).status == 200
        reply = await client.request("GET", "/api/sites")
        assert reply.status == 200
        assert reply.json() == {
            "source": "records",
            "note": "",
            "sites": [
                {
                    "id": "son-tra-air",
                    "name": "Son Tra air-quality station",
                    "name_vi": "Trạm quan trắc không khí Sơn Trà",
                    "lat": 16.0822,
                    "lon": 108.2354,
                },
                {
                    "id": "cau-do",
                    "name": "Cau Do",
                    "name_vi": "Cau Do",
                    "lat": 16.01,
                    "lon": 108.19,
                },
            ],
        }


async def test_without_site_records_the_sites_devices_report_go_on_a_grid() -> None:
    for records in (None, []):
        services = Services(site_records=records)
        async with console(services) as client:
            assert (await client.login("view.binh")).status == 200
            body = (await client.request("GET", "/api/sites")).json()
            assert body["source"] == "devices"
            assert body["sites"] == [{"id": "cau-do", "name": "cau-do", "x": 0.5, "y": 0.5}]
            assert body["note"] == (
                "records: unknown record type 'site'" if records is None else ""
            )


async def test_fields_are_grouped_by_pillar_in_the_programmes_order() -> None:
    async with console(Services()) as client:
        assert (await client.login("view.binh")).status == 200
        pillars = (await client.request("GET", "/api/fields")).json()["pillars"]
        assert [p["id"] for p in pillars] == ["mobility", "environment"]
        assert [f["id"] for f in pillars[1]["fields"]] == ["water_supply"]


async def test_the_chart_asks_for_about_240_steps_unless_told() -> None:
    services = Services()
    async with console(services) as client:
        assert (await client.login("view.binh")).status == 200
        query = b"field=water_supply&metric=turbidity&since=86400"
        assert (await client.request("GET", "/api/range", query=query)).json()["step"] == 360
        raw = await client.request("GET", "/api/range", query=query + b"&step=0&agg=max")
        assert raw.json()["step"] == 0


async def test_a_silence_names_the_labels_given_and_lasts_the_minutes_given() -> None:
    services = Services()
    async with console(services) as client:
        assert (await client.login("op.an")).status == 200
        nothing = await client.request("POST", "/api/silences", json_body={"minutes": 30})
        assert nothing.status == 400
        reply = await client.request(
            "POST",
            "/api/silences",
            json_body={
                "field": "water_supply",
                "site": "cau-do",
                "minutes": 30,
                "comment": "flush",
            },
        )
        assert reply.status == 200
        too_long = await client.request(
            "POST", "/api/silences", json_body={"field": "water_supply", "minutes": 10081}
        )
        assert too_long.status == 400
    (made,) = services.silences
    assert [(m.name, m.value, m.type) for m in made.silence.matchers] == [
        ("field", "water_supply", alerts_pb2.Matcher.TYPE_EQUAL),
        ("site", "cau-do", alerts_pb2.Matcher.TYPE_EQUAL),
    ]
    assert made.silence.end_time.seconds - made.silence.start_time.seconds == 1800
    assert made.silence.comment == "flush"
    assert made.request_id
