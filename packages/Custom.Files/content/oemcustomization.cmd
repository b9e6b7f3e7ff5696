@echo off
REM runs on every boot (sample)
exit /b 0
